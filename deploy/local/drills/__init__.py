"""Long drills against the running local stack (not part of ``make test``)."""
