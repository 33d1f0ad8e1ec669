"""The operator's web UI, served by the orchestrator under /ui: server-rendered pages
(Jinja2) made live with htmx and its SSE extension over the orchestrator's event hub.

Modules: views (each view's data from the database), pages (GET: pages, fragments, the
event stream, login), actions (POST: what an operator does from the UI). Assets (htmx, its
SSE extension, the style sheet) are vendored in static/, so it works offline.
"""
