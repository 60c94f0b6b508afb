"""Rasa 3.6 graph components of our own, named in config.yml by their module path, and our REST
input channel (`channel.py`, named in credentials.yml: Rasa's behind the bot's token).

They run inside the Rasa engine (.venv-rasa, Python 3.10) only: our code in .venv never imports
this package, as it never imports rasa. `encoders.py` turns a message into a sentence vector with
pretrained multilingual encoders shipped inside installed packages (no network at any time);
`classifier.py` is the intent classifier that reads those vectors with Rasa's word counts.
"""
