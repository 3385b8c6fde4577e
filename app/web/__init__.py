"""The web: the customer's follow-up page and the embeddable survey widget.

It calls into feedback and cases; nothing imports it but app/main.py.
"""
