"""Developer tools: the local fake Graph API, the terminal chat client, demo data."""
