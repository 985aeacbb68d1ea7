"""The HTTP server: /metrics, /healthz, /readyz, /api/*, the dashboard."""
