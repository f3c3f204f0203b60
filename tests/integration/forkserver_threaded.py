"""Imported by a zygote in a test: a module that starts a thread at import, as no service module may."""

import threading

threading.Thread(target=threading.Event().wait, name="started-at-import", daemon=True).start()
