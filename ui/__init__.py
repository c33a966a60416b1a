"""App-side support for the pages: session state, cached loaders and display helpers."""
