"""Who may do what (issue 15): roles, the actions each allows, and how an identity's claims map to a
role. Pure: no I/O beyond reading the mapping file's text in `load_role_map`."""
