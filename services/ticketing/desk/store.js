// What the device keeps: its desk credential and the ticket key (localStorage), and every
// check-in it made (IndexedDB, store "checkins", key client_id), from the moment the staff
// pressed the button until the server answered. Nothing is lost when the tab or the tablet
// restarts while offline.

const DB_NAME = "vaksin-desk";
const STORE = "checkins";

let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      const store = request.result.createObjectStore(STORE, { keyPath: "client_id" });
      store.createIndex("state", "state");
      store.createIndex("scanned_at", "scanned_at");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function run(mode, work) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const tx = database.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result.result ?? result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export function put(item) {
  return run("readwrite", (store) => store.put(item));
}

export async function all() {
  const items = await run("readonly", (store) => store.getAll());
  return items.sort((a, b) => (a.scanned_at < b.scanned_at ? -1 : 1));
}

export async function pending() {
  return (await all()).filter((item) => item.state === "pending");
}

// The check-in of a ticket this device already made (or queued), if any.
export async function usedHere(ticketId) {
  return (await all()).find(
    (item) => item.jti === ticketId && (item.state === "pending" || item.state === "synced"),
  );
}

const KEYS = { credential: "desk.credential", desk: "desk.desk", jwk: "desk.jwk" };

export function load(name) {
  const value = localStorage.getItem(KEYS[name]);
  return value && name !== "credential" ? JSON.parse(value) : value;
}

export function save(name, value) {
  if (value == null) localStorage.removeItem(KEYS[name]);
  else localStorage.setItem(KEYS[name], name === "credential" ? value : JSON.stringify(value));
}
