"""Who may see what: tokens, identity encryption, the data-sharing policy, the audit hash chain."""
