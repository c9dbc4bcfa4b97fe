"""Tables, sessions and the queries the rest of modscan needs."""
