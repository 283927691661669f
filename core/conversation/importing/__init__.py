"""Conversations brought in from other apps' exports (ChatGPT, Open WebUI, LibreChat) and from Agent Chat's own.

Each format module turns its file's conversations into `shapes.Conversation` trees; `writer` stores
one tree as a session in one transaction; `jobs` runs a whole import (the command and the API's
background task) and writes its report.
"""
