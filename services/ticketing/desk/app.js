// The facility desk app: enrol the device, scan a ticket (camera, photo or typed code), see what
// it means, check the person in with the on-site screening and the dose. Every check-in is kept
// on the device (IndexedDB) before it is sent, so a lost connection loses nothing: the queue is
// synced when the connection returns, and the server, the judge of single use, says on sync
// whether another desk was first.
import { language, setLanguage, t, translatePage } from "./i18n.js";
import * as store from "./store.js";
import { offlineVerdict, readTicket } from "./verify.js";
import * as verify from "./verify.js";

const $ = (id) => document.getElementById(id);
const CODE = /^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$/;
const CHECKED_IN = new Set(["redeemed", "dose_recorded"]);
const GOOD = new Set(["valid", "redeemed", "dose_recorded"]);
const WARN = new Set(["not_yet", "another_facility", "queued"]);
const SYNC_SECONDS = 10;

const state = {
  credential: store.load("credential"),
  desk: store.load("desk"),
  jwk: store.load("jwk"),
  online: navigator.onLine,
  revoked: false,
  mode: "scan", // or "enrol": what a scanned QR code is for
  current: null, // {ref, answer, offline}
  shownSync: new Set(), // client ids whose refusal was already announced
};

// --- talking to the ticketing service ------------------------------------------------------------

class Offline extends Error {}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.credential) headers.Authorization = `Bearer ${state.credential}`;
  let response;
  try {
    response = await fetch(`api/${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    setOnline(false);
    throw new Offline();
  }
  setOnline(true);
  let data = {};
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page): treated as no answer
  }
  if (response.status === 401 && state.credential) {
    showRevoked();
    throw new Offline();
  }
  return { status: response.status, data };
}

function setOnline(online) {
  state.online = online;
  $("net").textContent = t(online ? "online" : "offline");
  $("net").className = `net ${online ? "net-on" : "net-off"}`;
}

async function refresh() {
  if (!state.credential) return;
  try {
    const me = await api("me");
    if (me.status === 200) {
      state.desk = me.data;
      store.save("desk", me.data);
      renderDesk();
    }
    const key = await api("public-key");
    if (key.status === 200) {
      state.jwk = key.data.jwk;
      store.save("jwk", key.data.jwk);
    }
  } catch (error) {
    if (!(error instanceof Offline)) throw error;
  }
}

// --- views -----------------------------------------------------------------------------------

const VIEWS = ["enrol-view", "revoked-view", "scan-view", "result-view", "history-view"];

function show(...visible) {
  for (const id of VIEWS) $(id).hidden = !visible.includes(id);
}

function renderDesk() {
  $("desk-name").textContent = state.desk ? state.desk.name : t("app_title");
  $("facility-name").textContent = state.desk
    ? `${state.desk.facility_name} (${state.desk.facility_code})`
    : "";
  $("footer").textContent = state.desk
    ? `desk #${state.desk.desk_id} · ${verify.backend ?? "-"}`
    : "";
}

function showEnrol(code) {
  state.mode = "enrol";
  stopCamera();
  show("enrol-view");
  if (code) $("enrol-code").value = code;
  $("enrol-code").focus();
}

function showScan() {
  state.mode = "scan";
  state.current = null;
  show("scan-view", "history-view");
  $("scan-message").textContent = "";
  $("ticket-code").value = "";
}

function showRevoked() {
  state.revoked = true;
  stopCamera();
  show("revoked-view", "history-view");
}

function message(text) {
  $("scan-message").textContent = text;
}

// --- enrolment -------------------------------------------------------------------------------

function enrolCodeFrom(text) {
  const match = /[#?&]enrol=([^&#]+)/.exec(text);
  return (match ? decodeURIComponent(match[1]) : text).trim();
}

const ENROL_ERRORS = {
  unknown_code: "enrol_unknown_code",
  code_used: "enrol_code_used",
  code_expired: "enrol_code_expired",
  desk_revoked: "enrol_desk_revoked",
  too_many_requests: "enrol_too_many",
  invalid: "enrol_invalid",
};

async function enrol(code) {
  const error = $("enrol-error");
  error.hidden = true;
  const normal = code.toUpperCase().replace(/[\s-]/g, "");
  if (!/^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{12}$/.test(normal)) {
    error.textContent = t("enrol_invalid");
    error.hidden = false;
    return;
  }
  state.credential = null;
  let answer;
  try {
    answer = await api("enrol", { code: normal });
  } catch {
    error.textContent = t("enrol_offline");
    error.hidden = false;
    return;
  }
  if (answer.status !== 201) {
    error.textContent = t(ENROL_ERRORS[answer.data.error] ?? "enrol_unknown_code");
    error.hidden = false;
    return;
  }
  state.credential = answer.data.credential;
  state.desk = answer.data.desk;
  state.jwk = answer.data.jwk;
  state.revoked = false;
  store.save("credential", state.credential);
  store.save("desk", state.desk);
  store.save("jwk", state.jwk);
  renderDesk();
  showScan();
  syncNow();
}

// --- reading a QR code -------------------------------------------------------------------------

let zxing = null;

function reader() {
  zxing ??= window.ZXingWASM.prepareZXingModule({
    overrides: {
      locateFile: (path, prefix) =>
        path.endsWith(".wasm") ? new URL("vendor/zxing_reader.wasm", document.baseURI).href : prefix + path,
    },
    fireImmediately: true,
  });
  return zxing;
}

async function readQR(input) {
  await reader();
  const results = await window.ZXingWASM.readBarcodes(input, {
    formats: ["QRCode"],
    tryHarder: true,
    maxNumberOfSymbols: 1,
  });
  const found = results.find((result) => result.isValid && result.text);
  return found ? found.text : null;
}

let stream = null;
let lastScan = { text: "", at: 0 };

async function startCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment", width: { ideal: 1280 } },
      audio: false,
    });
  } catch {
    message(t("no_camera"));
    return;
  }
  const video = $("camera");
  video.srcObject = stream;
  await video.play();
  $("camera-box").hidden = false;
  $("camera-toggle").textContent = t("camera_stop");
  scanFrames(video, stream);
}

function stopCamera() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("camera-box").hidden = true;
  $("camera-toggle").textContent = t("camera_start");
}

async function scanFrames(video, current) {
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  while (stream === current) {
    if (video.readyState >= 2 && video.videoWidth) {
      const scale = Math.min(1, 960 / Math.max(video.videoWidth, video.videoHeight));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const text = await readQR(context.getImageData(0, 0, canvas.width, canvas.height));
      // The same code held in front of the camera is one scan, not a flood of them.
      const repeat = text === lastScan.text && Date.now() - lastScan.at < 3000;
      if (text && !repeat && stream === current) {
        lastScan = { text, at: Date.now() };
        stopCamera();
        await scanned(text);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

async function scanned(text) {
  if (state.mode === "enrol") {
    const code = enrolCodeFrom(text);
    $("enrol-code").value = code;
    await enrol(code);
    return;
  }
  await judge({ token: text.trim(), claims: await readTicket(text, state.jwk) });
}

// --- judging a ticket ------------------------------------------------------------------------

function fromClaims(claims, status) {
  const [start, end] = claims.t.split("-");
  return {
    status,
    ticket_id: claims.jti,
    code: claims.code,
    masked_name: claims.nm,
    masked_nik: null,
    dose: claims.dose,
    facility_code: claims.fac,
    facility_name: claims.fac === state.desk?.facility_code ? state.desk.facility_name : claims.fac,
    date: claims.day,
    start,
    end,
  };
}

async function judge(ref) {
  show("result-view", "history-view");
  renderVerdict({ status: "checking" });
  let answer = null;
  let offline = false;
  if (state.online || navigator.onLine) {
    try {
      const reply = await api("verify", ref.token ? { token: ref.token } : { code: ref.code });
      if (reply.status === 200) answer = reply.data;
      else if (reply.status === 429) return showError(t("too_many"));
      else if (reply.status === 400) answer = { status: "forged" };
    } catch (error) {
      if (!(error instanceof Offline)) throw error;
      if (state.revoked) return;
    }
  }
  if (answer === null) {
    if (!ref.token) {
      showScan();
      return message(t("code_needs_online"));
    }
    offline = true;
    if (ref.claims === null) answer = { status: "forged" };
    else {
      const used = await store.usedHere(ref.claims.jti);
      answer = fromClaims(ref.claims, offlineVerdict(ref.claims, state.desk, used));
      if (used) answer.local_used = used.scanned_at;
    }
  } else if (answer.status === "valid") {
    const used = await store.usedHere(answer.ticket_id);
    if (used) answer = { ...answer, status: "already_used", local_used: used.scanned_at };
  }
  state.current = { ref, answer, offline };
  renderResult();
}

function showError(text) {
  showScan();
  message(text);
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(language() === "en" ? "en-GB" : "id-ID", {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
}

function renderVerdict(answer, offline = false) {
  const verdict = $("verdict");
  const status = answer.status;
  verdict.className = `verdict ${
    GOOD.has(status) ? "verdict-good" : WARN.has(status) ? "verdict-warn" : status === "checking" ? "verdict-wait" : "verdict-bad"
  }`;
  verdict.dataset.status = status;
  const key = status === "valid" && offline ? "valid_offline" : status;
  $("verdict-words").textContent = status === "checking" ? t("checking") : t(`v_${key}`);
  $("verdict-detail").textContent =
    status === "checking" ? "" : t(`d_${key}`, { facility: answer.facility_name || answer.facility_code });
}

function renderResult() {
  const { answer, offline } = state.current;
  renderVerdict(answer, offline);
  renderDesk(); // the footer names the signature check used
  const usedBy = $("used-by");
  usedBy.hidden = !(answer.redeemed_at || answer.local_used);
  usedBy.textContent = answer.local_used
    ? t("local_used", { at: when(answer.local_used) })
    : t("used_by", { by: answer.redeemed_by, at: when(answer.redeemed_at) });
  $("ticket").hidden = !answer.code;
  $("t-name").textContent = answer.masked_name ?? "";
  $("t-nik").textContent = answer.masked_nik ?? t("nik_online");
  $("t-dose").textContent = answer.dose ?? "";
  $("t-session").textContent = answer.date
    ? `${answer.date} ${String(answer.start).slice(0, 5)}–${String(answer.end).slice(0, 5)} WIB`
    : "";
  $("t-facility").textContent = answer.facility_name ?? answer.facility_code ?? "";
  $("t-code").textContent = answer.code ?? "";
  $("checkin-form").hidden = answer.status !== "valid";
  $("checkin-error").hidden = true;
  $("checkin-submit").disabled = false;
}

// --- checking in -----------------------------------------------------------------------------

function measurements() {
  const raw = $("temperature").value.trim().replace(",", ".");
  const systolic = $("systolic").value.trim();
  const diastolic = $("diastolic").value.trim();
  let temperature = null;
  if (raw) {
    temperature = Number(raw);
    if (!Number.isFinite(temperature) || temperature < 30 || temperature > 45) {
      throw new Error(t("bad_temperature"));
    }
    temperature = Math.round(temperature * 10) / 10;
  }
  let pressure = null;
  if (systolic || diastolic) {
    const high = Number(systolic);
    const low = Number(diastolic);
    const ok = /^\d+$/.test(systolic) && /^\d+$/.test(diastolic) &&
      high >= 50 && high <= 300 && low >= 20 && low <= 200 && low < high;
    if (!ok) throw new Error(t("bad_pressure"));
    pressure = `${high}/${low}`;
  }
  return { temperature_c: temperature, blood_pressure: pressure };
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function checkIn(event) {
  event.preventDefault();
  const { ref, answer } = state.current;
  let measured;
  try {
    measured = measurements();
  } catch (error) {
    $("checkin-error").textContent = error.message;
    $("checkin-error").hidden = false;
    return;
  }
  $("checkin-submit").disabled = true;
  const item = {
    client_id: newId(),
    token: ref.token ?? null,
    code: ref.token ? null : ref.code,
    jti: answer.ticket_id,
    ticket_code: answer.code,
    masked_name: answer.masked_name,
    dose: answer.dose,
    dose_given: $("dose-given").checked,
    ...measured,
    scanned_at: new Date().toISOString(),
    state: "pending",
  };
  await store.put(item); // kept before anything is sent: a lost connection loses nothing
  state.shownSync.add(item.client_id);
  await renderQueue();
  await syncNow();
  const [saved] = (await store.all()).filter((each) => each.client_id === item.client_id);
  state.current = {
    ref,
    offline: saved.state === "pending",
    answer: saved.state === "pending" ? { ...answer, status: "queued" } : saved.answer,
  };
  renderResult();
  for (const id of ["temperature", "systolic", "diastolic"]) $(id).value = "";
}

function bodyOf(item) {
  const body = {
    client_id: item.client_id,
    dose_given: item.dose_given,
    temperature_c: item.temperature_c,
    blood_pressure: item.blood_pressure,
    scanned_at: item.scanned_at,
  };
  if (item.token) body.token = item.token;
  else body.code = item.code;
  return body;
}

let syncing = null;

function syncNow() {
  syncing ??= sync().finally(() => {
    syncing = null;
  });
  return syncing;
}

async function sync() {
  if (!state.credential || state.revoked) return;
  const refused = [];
  for (const item of await store.pending()) {
    let reply;
    try {
      reply = await api("checkin", bodyOf(item));
    } catch (error) {
      if (error instanceof Offline) break;
      throw error;
    }
    if (reply.status === 429 || reply.status >= 500 || !reply.data.status && reply.status !== 400) break;
    item.answer = reply.status === 400 ? { status: "invalid", detail: reply.data.detail } : reply.data;
    item.synced_at = new Date().toISOString();
    item.state = CHECKED_IN.has(item.answer.status) ? "synced" : reply.status === 400 ? "failed" : "conflict";
    await store.put(item);
    if (item.state !== "synced" && !state.shownSync.has(item.client_id)) refused.push(item);
  }
  await renderQueue();
  if (refused.length) {
    $("sync-alert").textContent = t("sync_conflict", { n: refused.length });
    $("sync-alert").hidden = false;
  }
}

async function renderQueue() {
  const items = await store.all();
  const waiting = items.filter((item) => item.state === "pending").length;
  $("pending").textContent = t("pending", { n: waiting });
  $("pending").className = `pending ${waiting ? "pending-some" : ""}`;
  $("pending").dataset.count = String(waiting);
  const list = $("history");
  list.replaceChildren();
  for (const item of items.reverse().slice(0, 30)) {
    const row = document.createElement("li");
    row.className = `h-${item.state}`;
    row.dataset.clientId = item.client_id;
    row.dataset.state = item.state;
    const head = document.createElement("div");
    head.textContent = `${item.ticket_code ?? item.code ?? "?"} · ${item.masked_name ?? ""} · ${when(item.scanned_at)}`;
    const status = document.createElement("div");
    status.className = "h-state";
    let text = t(`h_${item.state}`);
    const answer = item.answer;
    if (answer && item.state !== "synced") {
      text += `: ${t(`v_${answer.status}`) === `v_${answer.status}` ? answer.detail ?? answer.status : t(`v_${answer.status}`)}`;
      if (answer.redeemed_by) text += ` — ${t("used_by", { by: answer.redeemed_by, at: when(answer.redeemed_at) })}`;
    }
    status.textContent = text;
    row.append(head, status);
    list.append(row);
  }
  if (!items.length) {
    const row = document.createElement("li");
    row.textContent = t("history_empty");
    list.append(row);
  }
}

// --- wiring ----------------------------------------------------------------------------------

function wire() {
  $("lang").addEventListener("click", () => {
    setLanguage(language() === "id" ? "en" : "id");
    retranslate();
  });
  $("enrol-form").addEventListener("submit", (event) => {
    event.preventDefault();
    enrol($("enrol-code").value);
  });
  $("enrol-scan").addEventListener("click", () => (stream ? stopCamera() : startCamera()));
  $("revoked-enrol").addEventListener("click", () => {
    state.credential = null;
    store.save("credential", null);
    showEnrol();
  });
  $("camera-toggle").addEventListener("click", () => (stream ? stopCamera() : startCamera()));
  $("photo").addEventListener("change", async (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (!file) return;
    message(t("checking"));
    const text = await readQR(file).catch(() => null);
    if (text) await scanned(text);
    else message(t("no_qr"));
  });
  $("code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = $("ticket-code").value.toUpperCase().replace(/\s/g, "");
    if (!CODE.test(code)) return message(t("bad_code"));
    judge({ code });
  });
  $("checkin-form").addEventListener("submit", checkIn);
  $("next").addEventListener("click", showScan);
  window.addEventListener("online", () => {
    setOnline(true);
    refresh().then(syncNow);
  });
  window.addEventListener("offline", () => setOnline(false));
}

function retranslate() {
  translatePage();
  $("lang").textContent = t("lang_switch");
  setOnline(state.online);
  renderDesk();
  if (state.current) renderResult();
  renderQueue();
}

async function boot() {
  setLanguage(language());
  wire();
  retranslate();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
  }
  const code = new URLSearchParams(location.hash.slice(1)).get("enrol");
  if (code) history.replaceState(null, "", location.pathname);
  if (code || !state.credential) {
    showEnrol(code);
    if (code) await enrol(code);
  } else {
    showScan();
    await refresh();
  }
  await renderQueue();
  syncNow();
  setInterval(() => {
    if (state.credential && !state.revoked) syncNow();
  }, SYNC_SECONDS * 1000);
  document.body.dataset.ready = "1";
}

boot();
