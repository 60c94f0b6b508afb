"""What the Telegram edge itself says (everything else comes from Rasa), in French and English."""

TEXTS = {
    "rasa_down": {
        "fr": "Désolé, je rencontre un problème technique et ne peux pas vous répondre tout de suite. "
        "Votre message est bien enregistré : je vous réponds ici dès que possible.",
        "en": "Sorry, I have a technical problem and cannot answer right now. "
        "Your message has been saved: I will answer you here as soon as I can.",
    },
    "crm_down": {
        "fr": "Désolé, un problème technique me retarde un instant : votre message m'est bien parvenu et je "
        "vous réponds ici dès que possible.",
        "en": "Sorry, a technical problem holds me up for a moment: your message has reached me and I will "
        "answer you here as soon as I can.",
    },
    "back": {
        "fr": "Me revoilà, pardon pour l'attente ! Votre message « {text} » :",
        "en": "I am back, sorry for the wait! Your message “{text}”:",
    },
    "back_no_quote": {
        "fr": "Me revoilà, pardon pour l'attente ! Voici ma réponse à votre dernier message :",
        "en": "I am back, sorry for the wait! Here is my answer to your last message:",
    },
    "no_answer": {
        "fr": "Désolé, je n'ai pas de réponse à vous donner pour le moment. Pourriez-vous reformuler ?",
        "en": "Sorry, I have no answer for you right now. Could you rephrase?",
    },
    "help": {
        "fr": "Je suis l'assistant relations clients. Je trouve les produits (prix, stock), prends vos "
        "commandes, les suis et les annule, enregistre vos réclamations et réponds sur la livraison, "
        "le paiement, les retours et les contrats.\n\nExemples : « avez-vous des imprimantes ? », "
        "« je veux commander », « où en est ma commande ? ».\n\nCommandes :\n/start — recommencer\n/help — cette aide\n"
        "/language — changer de langue\n/subscribe — recevoir nos promotions\n/stop — ne plus les recevoir",
        "en": "I am the client relations assistant. I find products (price, stock), take your orders, "
        "follow and cancel them, record your complaints and answer about delivery, payment, returns "
        "and contracts.\n\nExamples: \"do you have printers?\", \"I want to order\", \"where is my order?\".\n\n"
        "Commands:\n/start — start again\n/help — this help\n/language — change language\n"
        "/subscribe — receive our promotions\n/stop — stop receiving them",
    },
    "staff_help": {
        "fr": "\n\nCommandes de l'équipe :\n/queue — conversations en attente\n/take N — prendre une "
        "conversation\n/done — la terminer\n/client — fiche du client\n/note TEXTE — note dans la fiche\n"
        "/order CMD-000123 STATUT — statut d'une commande\n/resolve REC-000045 TEXTE — résoudre une réclamation\n"
        "/leads — prospects par score\n/lead N — fiche d'un prospect (et son statut)",
        "en": "\n\nStaff commands:\n/queue — waiting conversations\n/take N — take a conversation\n"
        "/done — end it\n/client — the client's card\n/note TEXT — a note in the client file\n"
        "/order CMD-000123 STATUS — an order's status\n/resolve REC-000045 TEXT — resolve a complaint\n"
        "/leads — leads by score\n/lead N — a lead's card (and its status)",
    },
    "marketer_help": {
        "fr": "\n\nDiffusions :\n/broadcast — composer une diffusion (texte, segment, aperçu, envoi)\n"
        "/broadcasts — les diffusions, leur état ; annuler",
        "en": "\n\nBroadcasts:\n/broadcast — compose a broadcast (text, segment, preview, sending)\n"
        "/broadcasts — the broadcasts and their state; cancel one",
    },
    "choose_language": {
        "fr": "Dans quelle langue souhaitez-vous échanger ?",
        "en": "Which language would you like to use?",
    },
    "language_set": {
        "fr": "C'est noté : je vous répondrai en français.",
        "en": "Noted: I will answer you in English.",
    },
    "non_text": {
        "fr": "Je ne sais lire que les messages écrits pour le moment. Pouvez-vous me poser votre "
        "question par écrit ?",
        "en": "I can only read written messages for now. Could you type your question?",
    },
    "unknown_command": {
        "fr": "Je ne connais pas la commande {command}. Commandes disponibles : /start, /help, /language, "
        "/subscribe, /stop.",
        "en": "I do not know the command {command}. Available commands: /start, /help, /language, "
        "/subscribe, /stop.",
    },
    "button_expired": {
        "fr": "Ce bouton n'est plus valable. Écrivez-moi votre demande.",
        "en": "This button is no longer valid. Please type your request.",
    },
    "rated": {
        "fr": "Merci pour votre note : {score}/5. Elle aide nos équipes à s'améliorer.",
        "en": "Thank you for your rating: {score}/5. It helps our teams improve.",
    },
    "empty": {
        "fr": "Votre message est vide. Que puis-je faire pour vous ?",
        "en": "Your message is empty. How can I help you?",
    },
}

COMMANDS = {
    "fr": [("start", "Recommencer"), ("help", "Aide"), ("language", "Changer de langue"),
           ("subscribe", "Recevoir nos promotions"), ("stop", "Ne plus recevoir de promotions")],
    "en": [("start", "Start again"), ("help", "Help"), ("language", "Change language"),
           ("subscribe", "Receive our promotions"), ("stop", "Stop receiving promotions")],
}
