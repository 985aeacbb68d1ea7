"""Exchange feeds: parse frames, keep books bridged, publish market events."""
