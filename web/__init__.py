"""The physicist's review desk: a server-rendered Starlette app over :mod:`store`.

Pages: the review queue, one acquisition (findings, proposal, z-axis picture, actions and audit
trail), trends per site and scanner, local reference levels; every list exports as CSV. Plots are
Plotly figures whose JavaScript (``plotly.min.js`` from the plotly package) the desk serves
itself: no CDN, no front-end build. Access: local users (:mod:`store.users`), signed session
cookies (HttpOnly, SameSite=Strict), a CSRF token on every form; see docs/review-desk.md.
"""
