// Reading a ticket on the device, with no server: the QR code holds a JWS (compact form) signed
// with Ed25519 (services/ticketing/token.py). Only `alg: EdDSA` with our key id is accepted, and
// the claims are read only after the signature checks out. WebCrypto verifies where the browser
// has Ed25519 (Chrome 137+); elsewhere @noble/ed25519 (vendored from npm) does, in strict
// RFC 8032 mode like the server's `cryptography`.

const B64URL = /^[A-Za-z0-9_-]*$/;
const MAX_TOKEN_LENGTH = 2000;

function unb64(text) {
  if (!text || !B64URL.test(text)) throw new Error("not base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  if (b64(bytes) !== text) throw new Error("not canonical base64url");
  return bytes;
}

function b64(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function json(bytes) {
  const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
  return value;
}

export let backend = null; // "webcrypto" or "noble": which one verified last (shown in the footer)

async function ed25519(publicKey, signature, message) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    backend = "webcrypto";
    return ok;
  } catch {
    // No Ed25519 in this browser's WebCrypto (NotSupportedError), or no WebCrypto at all.
  }
  const ed = await import("./vendor/noble-ed25519.js");
  backend = "noble";
  return ed.verifyAsync(signature, message, publicKey, { zip215: false });
}

const CLAIMS = { jti: "string", code: "string", bid: "number", dose: "number", fac: "string",
  day: "string", t: "string", nm: "string", exp: "number", iat: "number" };

// The claims of a ticket we signed, or null for anything else (a forged, truncated or foreign
// QR code: the desk needs to know it is not ours, not which byte is wrong).
export async function readTicket(text, jwk) {
  try {
    const token = text.trim();
    if (!jwk || token.length > MAX_TOKEN_LENGTH) return null;
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const header = json(unb64(parts[0]));
    if (header.alg !== "EdDSA" || header.kid !== jwk.kid) return null;
    const signature = unb64(parts[2]);
    if (signature.length !== 64) return null;
    const message = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    if (!(await ed25519(unb64(jwk.x), signature, message))) return null;
    const claims = json(unb64(parts[1]));
    for (const [name, type] of Object.entries(CLAIMS)) {
      if (typeof claims[name] !== type) return null;
    }
    return claims;
  } catch {
    return null;
  }
}

// Today's date in Jakarta, as the server judges "not today" (YYYY-MM-DD).
export function jakartaDate(now = new Date()) {
  return new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Jakarta", year: "numeric", month: "2-digit", day: "2-digit",
  }).format(now);
}

// What a genuine ticket means to this desk without the server: it cannot know of a revocation
// or of a check-in at another desk (the server tells on sync), only what the ticket says and
// what this device did.
export function offlineVerdict(claims, desk, usedHere, now = new Date()) {
  if (claims.fac !== desk.facility_code) return "another_facility";
  if (usedHere) return "already_used";
  if (now.getTime() >= claims.exp * 1000) return "expired";
  if (jakartaDate(now) < claims.day) return "not_yet";
  return "valid";
}
