// The desk app's service worker: the app opens with no connection. Its files are cached at
// install and refreshed whenever the network answers (network first, the cache when it does
// not); the API is never cached (check-ins wait in IndexedDB instead, see store.js).
const CACHE = "vaksin-desk-v1";
const SHELL = [
  "./",
  "app.js",
  "i18n.js",
  "store.js",
  "verify.js",
  "desk.css",
  "manifest.webmanifest",
  "icon.svg",
  "icon-192.png",
  "icon-512.png",
  "vendor/zxing-reader.js",
  "vendor/zxing_reader.wasm",
  "vendor/noble-ed25519.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.includes("/api/")) return; // live answers only
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(() =>
        caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || caches.match("./")),
      ),
  );
});
