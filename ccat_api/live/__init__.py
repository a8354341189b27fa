"""Live monitoring: the site's status sampled once per process, Redis pub/sub events fanned
out to WebSocket monitors, and the short-lived tickets browsers use to open them. Nothing
here writes to the buffer or the database."""
