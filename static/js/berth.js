// Berth's small client-side helpers. No inline script anywhere: the CSP forbids it.
"use strict";

// Copy buttons: <button data-copy="text"> copies its text and says so.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    button.setAttribute("data-copied", text);
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, done);
  } else {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});

// Confirmations: <form data-confirm="question"> asks before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
});

// Sort pickers: <select data-order="#order-select"> resets the order to the natural one for
// the new key (newest first for dates, A → Z for names) and relabels it. Capture phase, so
// the order is right before htmx reads the form for the request the same change triggers.
const resetOrder = (event) => {
  const sort = event.target.closest && event.target.closest("select[data-order]");
  if (!sort || sort.dataset.lastValue === sort.value) return;
  sort.dataset.lastValue = sort.value;
  const order = document.querySelector(sort.getAttribute("data-order"));
  if (!order) return;
  for (const option of order.options) {
    option.textContent = option.dataset[sort.value] || option.textContent;
  }
  order.value = sort.value === "name" ? "asc" : "desc";
};
document.addEventListener("input", resetOrder, true);
document.addEventListener("change", resetOrder, true);

// Tabs whose panel htmx swaps (<a role="tab" hx-get>): mark the clicked tab as selected
// once its panel has arrived; the tabs themselves are outside the swapped panel.
document.addEventListener("htmx:afterRequest", (event) => {
  const tab = event.detail.elt;
  if (!event.detail.successful || !tab || tab.getAttribute("role") !== "tab") return;
  const list = tab.closest("[role=tablist]");
  if (!list) return;
  for (const other of list.querySelectorAll("[role=tab]")) {
    other.setAttribute("aria-selected", other === tab ? "true" : "false");
    if (other === tab) other.removeAttribute("tabindex"); else other.setAttribute("tabindex", "-1");
  }
});

// Regions that replace themselves while polling (health panels, job status): keep the
// <details> a reader opened, and the keyboard focus, across each swap.
const keptState = new Map();
const focusablesIn = (root) => [...root.querySelectorAll("a[href], button, summary, input, select, textarea")];
const detailsKeys = (root) => {
  const seen = {};
  return [...root.querySelectorAll("details")].map((d) => {
    const summary = d.querySelector("summary");
    const label = summary ? summary.textContent.trim() : "";
    seen[label] = (seen[label] || 0) + 1;
    return [d, label + "#" + seen[label]];
  });
};
document.addEventListener("htmx:beforeSwap", (event) => {
  const old = event.detail.target;
  if (!old || !old.id || !event.detail.shouldSwap) return;
  const open = detailsKeys(old).filter(([d]) => d.open).map(([, key]) => key);
  const focused = focusablesIn(old).indexOf(document.activeElement);
  if (open.length || focused >= 0) keptState.set(old.id, { open, focused });
});
document.addEventListener("htmx:afterSwap", (event) => {
  const fresh = event.target;
  const state = fresh && fresh.id && keptState.get(fresh.id);
  if (!state) return;
  keptState.delete(fresh.id);
  for (const [d, key] of detailsKeys(fresh)) if (state.open.includes(key)) d.open = true;
  const target = state.focused >= 0 && focusablesIn(fresh)[state.focused];
  if (target) target.focus({ preventScroll: true });
});

// Platform tabs follow the ARIA tabs pattern: arrow keys, Home and End move between tabs
// (and open the one reached, as a click would).
document.addEventListener("keydown", (event) => {
  const tab = event.target.closest && event.target.closest("[role=tab]");
  if (!tab) return;
  const tabs = [...tab.closest("[role=tablist]").querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(tab);
  const moves = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: tabs.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
  next.focus();
  next.click();
});

// "updated 25 s ago", "checked 10 s ago": <span data-age-from="SECONDS"> counts on by itself.
setInterval(() => {
  for (const el of document.querySelectorAll("[data-age-from]")) {
    if (!el.dataset.ageStart) el.dataset.ageStart = String(Date.now());
    const seconds = Number(el.dataset.ageFrom) + (Date.now() - Number(el.dataset.ageStart)) / 1000;
    el.textContent = `${el.dataset.agePrefix || ""}${Math.round(seconds)} s ago`;
  }
}, 1000);
