"""Who someone is and what they may do: the directory (LDAP), logins, sessions, throttling."""
