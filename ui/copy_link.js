// "Copy link" (Streamlit components v2): copies the link to the page's state to the clipboard.
//
// The server sends the link's query string and the page's path; the link is built from the
// address the browser shows (so it works behind a proxy or a base path) and opens the page
// from the app's root ("?page=search&..."). Where the clipboard cannot be written (a page
// served over plain http from another machine), the link is shown selected, to copy by hand.
// The function runs again with each new `data`: the latest is kept on the root element.
function appLink(data) {
  const here = new URL(window.location.href);
  let path = here.pathname;
  if (data.slug && path.endsWith("/" + data.slug)) {
    path = path.slice(0, path.length - data.slug.length);
  }
  if (!path.endsWith("/")) path += "/";
  return here.origin + path + (data.query ? "?" + data.query : "");
}

export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".copy-link");
  root.__data = data || {};
  const button = root.querySelector("button");
  const shown = root.querySelector("input");
  const note = root.querySelector("[data-part=note]");
  button.textContent = root.__data.label || "Copy link";
  if (root.__ready) return;
  root.__ready = true;
  button.addEventListener("click", async () => {
    const link = appLink(root.__data);
    root.dataset.link = link;
    try {
      await navigator.clipboard.writeText(link);
      note.textContent = "Link copied";
      shown.hidden = true;
    } catch (error) {
      note.textContent = "Copy this link:";
      shown.value = link;
      shown.hidden = false;
      shown.select();
    }
    clearTimeout(root.__timer);
    root.__timer = setTimeout(() => { note.textContent = ""; }, 4000);
  });
}
