"""Search Explorer: the Streamlit entry point (page setup and navigation only).

The navigation sits at the top of the page: Streamlit's own sidebar navigation is turned off
(``client.showSidebarNavigation`` in ``.streamlit/config.toml``) because, with a ``pages/``
folder beside this script, it first lists that folder's files before ``st.navigation`` runs.

Each page draws the sidebar's collection picker itself (``state.sidebar``), so a page also
works when run alone, as ``AppTest.switch_page`` runs it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import links, state

# A file, not a Material icon: for one of those the browser fetches the tab's icon from Google's
# servers, which fails offline and tells a third party who opened the app.
ICON = Path(__file__).resolve().parent / "ui" / "icon.png"
st.set_page_config(page_title="Search Explorer", page_icon=str(ICON), layout="wide")
state.warm_up_maps()  # the map's kernels compile while the visitor looks at other pages

PAGES = {
    "": st.Page("pages/home.py", title="Start", icon=":material/home:", default=True),
    "corpus": st.Page("pages/corpus.py", title="Corpus", icon=":material/folder_open:"),
    "search": st.Page("pages/search.py", title="Search", icon=":material/search:"),
    "map": st.Page("pages/map.py", title="Embedding map", icon=":material/scatter_plot:"),
    "judge": st.Page("pages/judge.py", title="Judging", icon=":material/rate_review:"),
    "lab": st.Page("pages/lab.py", title="Relevance lab", icon=":material/science:"),
    "health": st.Page("pages/health.py", title="Health", icon=":material/monitor_heart:"),
}
navigation = st.navigation(list(PAGES.values()), position="top")
# A shared link opens from the app's root ("?page=search&q=..."): a deep link ("/search?...")
# makes the browser probe "/search/_stcore/..." first, which answers 404.
links.redirect({name: PAGES[name] for name in links.PAGES})
navigation.run()
