// DOM building without innerHTML: every user-controlled string becomes a text node, so
// aliases, metadata and model names can never run as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const loading = () => h("p", { class: "muted", role: "status" }, "Loading…");
export const failure = (err) => h("p", { class: "error", role: "alert" }, `Could not load: ${err.message}`);

export function money(value) {
  return value === null || value === undefined ? "—" : `$${Number(value).toFixed(4)}`;
}

export function when(value) {
  if (!value) return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19);
}

// A spend / budget bar: the width is set through the CSSOM (allowed by the CSP), never inline.
export function budgetBar(spend, budget) {
  const label = budget ? `${money(spend)} of ${money(budget)}` : money(spend);
  if (!budget) return h("span", {}, label);
  const ratio = Math.min(1, (spend || 0) / budget);
  const fill = h("span", { class: ratio >= 1 ? "fill over" : "fill" });
  fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  return h("span", { class: "budget" }, h("span", { class: "bar", "aria-hidden": "true" }, fill), label);
}

export function table({ caption, columns, rows, empty, onRow }) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)));
  const body = rows.map((row) => {
    const tr = h("tr", {}, columns.map((c) => h("td", { "data-label": c.title }, c.render(row))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      tr.addEventListener("click", () => onRow(row));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(row); });
    }
    return tr;
  });
  return h("div", { class: "table-wrap" },
    h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body)));
}

export function pager({ page, totalPages, hasNext, onPage }) {
  const next = totalPages ? page < totalPages : hasNext;
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: page <= 1, onClick: () => onPage(page - 1) }, "Previous"),
    h("span", { class: "muted" }, totalPages ? `Page ${page} of ${totalPages}` : `Page ${page}`),
    h("button", { type: "button", disabled: !next, onClick: () => onPage(page + 1) }, "Next"));
}

// A form from field specs: {name, label, type?, options?, placeholder?}. Returns the values
// that were filled in, converted by type.
export function form({ id, fields, submit, onSubmit }) {
  const message = h("p", { class: "error", role: "alert" });
  const inputs = fields.map((f) => {
    const inputId = `${id}-${f.name}`;
    let input;
    if (f.options) {
      input = h("select", { id: inputId, name: f.name },
        f.options.map(([value, text]) => h("option", { value }, text)));
    } else {
      input = h(f.type === "json" ? "textarea" : "input", {
        id: inputId, name: f.name, placeholder: f.placeholder,
        type: f.type === "number" ? "number" : f.type === "json" ? undefined : "text",
        step: f.type === "number" ? "any" : undefined,
      });
    }
    if (f.value !== undefined && f.value !== null) input.value = f.type === "json" ? JSON.stringify(f.value) : String(f.value);
    return [f, input, h("div", { class: "field" }, h("label", { for: inputId }, f.label), input)];
  });
  const el = h("form", { id, class: "card form" }, inputs.map(([, , box]) => box),
    h("div", { class: "actions" }, h("button", { type: "submit" }, submit)), message);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      const values = {};
      for (const [f, input] of inputs) {
        const raw = input.value.trim();
        if (raw === "") continue;
        if (f.type === "number") values[f.name] = Number(raw);
        else if (f.type === "list") values[f.name] = raw.split(",").map((s) => s.trim()).filter(Boolean);
        else if (f.type === "json") values[f.name] = JSON.parse(raw);
        else values[f.name] = raw;
      }
      await onSubmit(values);
    } catch (err) {
      message.textContent = err.message;
    }
  });
  return el;
}

export function copyButton(text) {
  return h("button", { type: "button", onClick: async (e) => {
    await navigator.clipboard.writeText(text);
    e.target.textContent = "Copied";
  } }, "Copy");
}

export const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
