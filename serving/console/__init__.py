"""The analyst console (`/ui`): try a message and see why, work the review queue, manage campaigns.

- `auth`: named API keys, session cookies and CSRF tokens (the gate, serving/security.py, uses them too);
- `review`: the review log (opt-in, beside the feedback store) and the queue built from it, the audit log and open appeals;
- `app`: the pages (Jinja templates in `templates/`, vanilla JS and CSS in `static/`) and their JSON calls.
"""
