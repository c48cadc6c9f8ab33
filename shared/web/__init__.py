"""The HTTP edge every service shares: error mapping, ops routes, the command shell, typed dependencies."""
