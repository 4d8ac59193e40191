// The chat simulator's page: one column per user, each polling what the services sent to that
// number through the fake Graph API, and posting what the user types or taps to /simulator/say.
"use strict";

const POLL_MS = 400;
const chats = new Map(); // wa_id -> {el, after, timer}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

// WhatsApp's own formatting: *bold*, _italic_, ~strikethrough~ (on escaped text only). Like
// WhatsApp, a marker opens only after a space or the line's start and hugs its text, so masked
// names such as "B** S*****" stay as they are.
function styled(text, marker, tag) {
  const m = marker.replace(/[*~]/, "\\$&");
  const pattern = new RegExp(`(^|[\\s(])${m}([^\\s${m}](?:[^${m}\\n]*[^\\s${m}])?)${m}(?=$|[\\s.,:;!?)])`, "gm");
  return text.replace(pattern, `$1<${tag}>$2</${tag}>`);
}

function formatted(text) {
  let html = escapeHtml(text || "");
  for (const [marker, tag] of [["*", "b"], ["_", "i"], ["~", "s"]]) html = styled(html, marker, tag);
  return html;
}

function clock(date) {
  return date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hour12: false});
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "html") node.innerHTML = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function say(waId, name, message) {
  const resp = await fetch("/simulator/say", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({from: waId, name, ...message}),
  });
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({error: `HTTP ${resp.status}`}));
    throw new Error(problem.error || `HTTP ${resp.status}`);
  }
}

function openChat(waId, name) {
  if (chats.has(waId)) {
    chats.get(waId).el.querySelector(".text").focus();
    return;
  }
  document.getElementById("no-chats").hidden = true;
  const node = document.getElementById("chat-template").content.firstElementChild.cloneNode(true);
  node.dataset.waId = waId;
  node.querySelector(".chat-name").textContent = name || `+${waId}`;
  node.querySelector(".chat-number").textContent = `+${waId}`;
  node.querySelector(".avatar").textContent = (name || "?").trim().charAt(0).toUpperCase();
  const chat = {el: node, after: 0, name, timer: null};
  chats.set(waId, chat);
  node.querySelector(".close").addEventListener("click", () => closeChat(waId));
  node.querySelector(".sheet-close").addEventListener("click", () => (node.querySelector(".sheet").hidden = true));
  node.querySelector(".composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = node.querySelector(".text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await send(chat, waId, {text}, text);
  });
  document.getElementById("chats").append(node);
  // What was sent to this number before the chat opened is not shown (nor what the user wrote
  // then): the composer opens once that point is known.
  const input = node.querySelector(".text");
  input.disabled = true;
  poll(waId, true).then(() => {
    input.disabled = false;
    node.dataset.ready = "true";
    input.focus();
    chat.timer = setInterval(() => poll(waId), POLL_MS);
  });
}

function closeChat(waId) {
  const chat = chats.get(waId);
  if (!chat) return;
  clearInterval(chat.timer);
  chat.el.remove();
  chats.delete(waId);
  document.getElementById("no-chats").hidden = chats.size > 0;
}

async function send(chat, waId, message, shown) {
  const bubble = addBubble(chat, "user", formatted(shown));
  try {
    await say(waId, chat.name, message);
  } catch (err) {
    bubble.classList.add("failed");
    bubble.append(el("div", {class: "footer", text: `not sent: ${err.message}`}));
  }
}

function addBubble(chat, who, html, extra = []) {
  const list = chat.el.querySelector(".messages");
  const bubble = el("div", {class: `msg ${who}`}, [el("div", {class: "content", html}), ...extra,
    el("time", {text: clock(new Date())})]);
  list.append(bubble);
  list.scrollTop = list.scrollHeight;
  return bubble;
}

async function poll(waId, first = false) {
  const chat = chats.get(waId);
  if (!chat || chat.busy) return;
  chat.busy = true;
  try {
    const resp = await fetch(`/_fake/messages?to=${waId}&after=${chat.after}`);
    if (!resp.ok) return;
    const sent = await resp.json();
    for (const message of sent) {
      chat.after = Math.max(chat.after, message.index);
      if (!first) showBotMessage(chat, waId, message.body);
    }
  } catch (err) {
    // the fake restarting: the next poll tries again
  } finally {
    chat.busy = false;
  }
}

function showBotMessage(chat, waId, body) {
  const kind = body.type;
  if (kind === "text") {
    addBubble(chat, "bot", formatted(body.text.body));
  } else if (kind === "interactive") {
    showInteractive(chat, waId, body.interactive);
  } else if (kind === "image" || kind === "video" || kind === "document") {
    showMedia(chat, kind, body[kind]);
  } else if (kind === "template") {
    const params = (body.template.components || []).flatMap((c) => (c.parameters || []).map((p) => p.text || ""));
    addBubble(chat, "bot", `<span class="template">template ${escapeHtml(body.template.name)}` +
      ` (${escapeHtml(body.template.language.code)})</span>\n${formatted(params.join("\n"))}`);
  } else {
    addBubble(chat, "bot", `<span class="template">${escapeHtml(kind)}</span>`);
  }
}

function showMedia(chat, kind, media) {
  const src = media.id ? `/_fake/media/${encodeURIComponent(media.id)}` : media.link;
  let shown;
  if (kind === "image") {
    shown = el("img", {class: "media", src, alt: media.caption || "image"});
    shown.addEventListener("load", () => {
      const list = chat.el.querySelector(".messages");
      list.scrollTop = list.scrollHeight;
    });
  }
  else shown = el("a", {class: `media ${kind}`, href: src, target: "_blank", rel: "noopener", text: kind === "video" ? "▶ video" : "document"});
  const bubble = addBubble(chat, "bot", "", [shown]);
  bubble.dataset.kind = kind;
  if (media.caption) bubble.insertBefore(el("div", {class: "caption", html: formatted(media.caption)}), bubble.lastChild);
}

function showInteractive(chat, waId, interactive) {
  const parts = [];
  if (interactive.header && interactive.header.text) parts.push(`<div class="header">${formatted(interactive.header.text)}</div>`);
  parts.push(formatted(interactive.body.text));
  if (interactive.footer) parts.push(`<div class="footer">${formatted(interactive.footer.text)}</div>`);
  addBubble(chat, "bot", parts.join(""));
  const action = interactive.action || {};
  const replies = el("div", {class: "replies"});
  if (interactive.type === "button") {
    for (const button of action.buttons || []) {
      const {id, title} = button.reply;
      replies.append(el("button", {"data-reply-id": id, text: title, onclick: () => tap(chat, waId, replies, {reply_id: id, title}, title)}));
    }
  } else if (interactive.type === "list") {
    replies.append(el("button", {class: "open-list", text: `☰ ${action.button}`, onclick: () => openList(chat, waId, replies, action)}));
  } else if (interactive.type === "cta_url") {
    replies.append(el("button", {text: action.parameters.display_text, onclick: () => window.open(action.parameters.url, "_blank", "noopener")}));
  }
  const list = chat.el.querySelector(".messages");
  list.append(replies);
  list.scrollTop = list.scrollHeight;
}

function openList(chat, waId, replies, action) {
  const sheet = chat.el.querySelector(".sheet");
  sheet.querySelector(".sheet-title").textContent = action.button;
  const rows = sheet.querySelector(".sheet-rows");
  rows.replaceChildren();
  for (const section of action.sections || []) {
    if (section.title) rows.append(el("div", {class: "sheet-section", text: section.title}));
    for (const row of section.rows || []) {
      const button = el("button", {class: "sheet-row", "data-reply-id": row.id}, [row.title]);
      if (row.description) button.append(el("small", {text: row.description}));
      button.addEventListener("click", () => {
        sheet.hidden = true;
        tap(chat, waId, replies, {reply_id: row.id, title: row.title, list: true}, row.title);
      });
      rows.append(button);
    }
  }
  sheet.hidden = false;
}

function tap(chat, waId, replies, message, title) {
  // WhatsApp keeps old buttons tappable; so does the simulator (the bot must cope with it)
  send(chat, waId, message, title);
}

async function loadPeople() {
  const list = document.getElementById("demo-people");
  const people = await (await fetch("/simulator/people")).json();
  for (const person of people) {
    list.append(el("li", {class: "demo", "data-wa-id": person.wa_id}, [
      el("span", {class: "info"}, [el("strong", {text: person.name}), `+${person.wa_id}`,
        el("br"), `NIK ends in ${person.nik_suffix} · ${person.profession}`]),
      el("button", {text: "Chat", onclick: () => openChat(person.wa_id, person.name)}),
    ]));
  }
}

document.getElementById("new-chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const error = document.getElementById("new-chat-error");
  let digits = document.getElementById("phone").value.replace(/\D/g, "");
  if (digits.startsWith("0")) digits = "62" + digits.slice(1);
  if (!/^\d{8,15}$/.test(digits)) {
    error.textContent = "A phone number has 8 to 15 digits, e.g. 6281234567890.";
    return;
  }
  error.textContent = "";
  openChat(digits, document.getElementById("name").value.trim());
});

loadPeople();
