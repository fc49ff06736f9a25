// Talking to the minewatch API: the key, JSON requests, and server-sent event streams.
//
// The key comes from ?api_key= in the page's URL (the link `make up` prints) or is asked for
// once; it is kept in sessionStorage (this tab, until it closes) and in a session cookie
// `minewatch_api_key` scoped to this site, because EventSource cannot send headers. The
// query parameter is removed from the address bar as soon as it is read.

import { noteServerDate } from "./store.js";

const STORE = "minewatch.api_key";
const COOKIE = "minewatch_api_key";
const listeners = new Set();

function setCookie(value) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  if (value) document.cookie = `${COOKIE}=${encodeURIComponent(value)}; Path=/; SameSite=Strict${secure}`;
  else document.cookie = `${COOKIE}=; Path=/; Max-Age=0; SameSite=Strict${secure}`;
}

export function takeKeyFromUrl() {
  const url = new URL(location.href);
  const key = url.searchParams.get("api_key");
  if (key) {
    setKey(key);
    url.searchParams.delete("api_key");
    history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
  }
}

export function getKey() { return sessionStorage.getItem(STORE) || ""; }

export function setKey(key) {
  sessionStorage.setItem(STORE, key);
  setCookie(key);
  listeners.forEach((f) => f(key));
}

export function clearKey() {
  sessionStorage.removeItem(STORE);
  setCookie("");
}

export function onKey(f) { listeners.add(f); }

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

let askPromise = null;

// Show the key dialog (once, however many requests are waiting) and resolve with the key.
export function askKey(message) {
  if (askPromise) return askPromise;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.textContent = message || "";
  input.value = "";
  askPromise = new Promise((resolve) => {
    const form = document.getElementById("key-form");
    const done = (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      form.removeEventListener("submit", done);
      dialog.close();
      askPromise = null;
      setKey(key);
      resolve(key);
    };
    form.addEventListener("submit", done);
    dialog.addEventListener("cancel", (ev) => ev.preventDefault(), { once: true });
    dialog.showModal();
    input.focus();
  });
  return askPromise;
}

function detailOf(body, status) {
  if (!body) return `HTTP ${status}`;
  const d = body.detail ?? body.message ?? body.error;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  return JSON.stringify(d ?? body);
}

// fetch JSON from the API with the key; a 401 asks for a key and tries again.
export async function api(path, { method = "GET", body, query } = {}) {
  let url = path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => qs.append(k, x)); else qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!getKey()) await askKey();
    const headers = { "X-API-Key": getKey(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                 credentials: "same-origin" });
    if (r.status === 401) {
      clearKey();
      await askKey("That key was not accepted. Enter a valid API key.");
      continue;
    }
    noteServerDate(r.headers.get("Date"));
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!r.ok) throw new ApiError(r.status, detailOf(data, r.status));
    return data;
  }
  throw new ApiError(401, "no valid API key");
}

// The list inside a list response ({data: [...]} or a bare array).
export function listOf(x) {
  if (Array.isArray(x)) return x;
  if (x && Array.isArray(x.data)) return x.data;
  if (x && Array.isArray(x.items)) return x.items;
  return [];
}

// A server-sent event stream that reconnects (EventSource does, and we rebuild it when it gives
// up), reports its state through onState('live'|'connecting'|'down'), and passes each named
// event's parsed JSON to handlers[name]. Returns {close()}.
export function stream(path, handlers, onState = () => {}) {
  let es = null;
  let closed = false;
  let retry = 500;
  let timer = null;
  const open = () => {
    if (closed) return;
    onState("connecting");
    const url = new URL(path, location.href);
    es = new EventSource(url.toString(), { withCredentials: true });
    es.onopen = () => { retry = 500; onState("live"); };
    es.onerror = () => {
      if (closed) return;
      if (es.readyState === EventSource.CLOSED) {
        onState("down");
        // A closed stream may be a refused key: check it with a plain request (which asks for
        // a new key on 401), then reopen.
        clearTimeout(timer);
        timer = setTimeout(async () => {
          try { await api("/robots"); } catch { /* reported by api() */ }
          open();
        }, retry);
        retry = Math.min(retry * 2, 10000);
      } else {
        onState("connecting");
      }
    };
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => {
        let data;
        try { data = JSON.parse(ev.data); } catch { return; }
        fn(data, ev);
      });
    }
  };
  open();
  return {
    close() { closed = true; clearTimeout(timer); if (es) es.close(); },
    reopen() { if (es) es.close(); open(); },
  };
}
