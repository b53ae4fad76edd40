"""The inference server (`shipml serve`)."""
