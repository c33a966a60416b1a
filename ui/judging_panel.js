// The judging panel (Streamlit components v2): one document at a time, graded by click or key.
//
// The server sends the pairs held for the judge: the one to grade now and the one fetched
// ahead. A grade or a skip shows the next one at once, before the server has answered; the
// panel then waits ("data-ready" 0) until the server has answered. The action is a state value
// (kept until replaced, with a nonce): a rerun the next action interrupts does not lose it.
// Corpus text is only ever set as text nodes, never parsed as HTML.
//
// The function runs again with each new `data`; what it must keep (the document shown, the
// latest data, the one key listener) lives on the panel's root element.
const KEYS = { "0": 0, "1": 1, "2": 2, "3": 3 };

function textInto(element, parts) {
  element.replaceChildren();
  for (const [text, marked] of parts) {
    if (marked) {
      const mark = document.createElement("mark");
      mark.textContent = text;
      element.appendChild(mark);
    } else {
      element.appendChild(document.createTextNode(text));
    }
  }
}

function part(root, name) {
  return root.querySelector(`[data-part=${name}]`);
}

function show(root, item, message) {
  const state = root.__state;
  state.shown = item ? item.token : null;
  part(root, "pair").hidden = !item;
  part(root, "empty").hidden = !!item;
  if (!item) {
    part(root, "empty").textContent = message || "";
    return;
  }
  part(root, "query").textContent = item.query;
  part(root, "need").textContent = item.need || "";
  part(root, "need-row").hidden = !item.need;
  part(root, "no-need").hidden = !!item.need;
  textInto(part(root, "title"), item.title);
  part(root, "title").hidden = item.title.length === 0;
  textInto(part(root, "body"), item.body);
  part(root, "cut").textContent = item.cut || "";
  part(root, "cut").hidden = !item.cut;
  part(root, "document").scrollTop = 0;
}

function ready(root, flag) {
  const state = root.__state;
  state.pending = !flag;
  root.dataset.ready = flag ? "1" : "0";
  const canUndo = state.latest.data.canUndo;
  for (const button of root.querySelectorAll("button")) {
    const op = button.dataset.op;
    button.disabled = !flag || (op === "undo" ? !canUndo : !state.shown);
  }
}

function act(root, op, grade) {
  const state = root.__state;
  const { data, setStateValue } = state.latest;
  const items = data.items || [];
  if (state.pending) return;
  if (op === "undo" && !data.canUndo) return;
  const current = items.find((item) => item.token === state.shown);
  if (op !== "undo" && !current) return;
  setStateValue("action", {
    op: op,
    grade: grade === undefined ? null : grade,
    query_id: current ? current.query_id : null,
    doc_id: current ? current.doc_id : null,
    nonce: Date.now() * 1000 + Math.floor(Math.random() * 1000),
  });
  if (op === "undo") {
    state.shown = null; // the server says which document comes back
  } else {
    const next = items[items.indexOf(current) + 1];
    show(root, next || null, "Saving...");  // at once: the server confirms it
  }
  ready(root, false);
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement.querySelector(".judging");
  const first = !root.__state;
  const state = root.__state || (root.__state = { shown: null, pending: false });
  state.latest = { data: data || {}, setStateValue };
  const items = state.latest.data.items || [];

  if (first) {  // the buttons, once; they act on the latest data
    for (const [grade, label] of state.latest.data.labels || []) {
      const button = document.createElement("button");
      button.dataset.grade = String(grade);
      button.textContent = `${grade} ${label}`;
      button.title = `Key ${grade}`;
      button.addEventListener("click", () => act(root, "grade", grade));
      part(root, "grades").appendChild(button);
    }
    part(root, "skip").addEventListener("click", () => act(root, "skip"));
    part(root, "undo").addEventListener("click", () => act(root, "undo"));
  }

  // the server's answer: keep the document shown ahead when it is the one to grade now
  const now = items.length ? items[0] : null;
  if (!(state.pending && now && now.token === state.shown)) {
    show(root, now, state.latest.data.message);
  }
  ready(root, true);

  if (!state.onKey) {
    state.onKey = (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || !root.isConnected) return;
      const target = event.target;
      const typing = target && (target.isContentEditable ||
        ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
      if (typing) return;
      const key = event.key.toLowerCase();
      if (key in KEYS) act(root, "grade", KEYS[key]);
      else if (key === "s") act(root, "skip");
      else if (key === "u") act(root, "undo");
      else return;
      event.preventDefault();
    };
    document.addEventListener("keydown", state.onKey);
  }
  return () => {
    document.removeEventListener("keydown", state.onKey);
    state.onKey = null;
  };
}
