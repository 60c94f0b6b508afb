"""The Telegram edge: clients' messages to Rasa and back, the local chat, and the command line."""
