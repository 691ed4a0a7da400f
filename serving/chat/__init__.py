"""Chat and call interception: conversation-aware scoring (conversation.py) and its evaluation (evaluate.py)."""
