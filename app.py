"""Search Explorer: the Streamlit entry point (navigation and shared setup only)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="Search Explorer", page_icon=":material/travel_explore:", layout="wide"
)

navigation = st.navigation(
    [st.Page("pages/search.py", title="Search", icon=":material/search:", default=True)]
)
navigation.run()
