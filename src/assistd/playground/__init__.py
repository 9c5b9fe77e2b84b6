"""The browser playground (``/playground``) and the API reference (``/docs``): static pages
shipped inside the package, served by assistd itself with a strict content security policy."""
