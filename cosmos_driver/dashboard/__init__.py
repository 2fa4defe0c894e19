"""The web dashboard (`cosmos ui`) and the self-contained batch report (`cosmos report`)."""
