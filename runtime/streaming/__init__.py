"""A run's trace as Server-Sent Events: the view, the process's hub and the SSE framing."""
