"""A test --app that cannot be imported: its children fail at boot (the app is broken)."""

raise RuntimeError("this app is broken on purpose")
