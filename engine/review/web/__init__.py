"""The review web app (`quarry serve`)."""
