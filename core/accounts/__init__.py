"""Accounts: the operator account, signing in, and hashed API tokens."""
