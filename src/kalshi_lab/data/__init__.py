"""Raw API documents and the typed tables parsed from them."""
