"""The trader's server-rendered pages, one module per page (views stay thin: parse, call one
service or selector, render). Partials under ``/ui/`` are what htmx re-fetches when the live
stream says a topic changed (``static/js/app.js``)."""
