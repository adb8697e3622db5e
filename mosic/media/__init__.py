"""Media: where audio bytes live (storage backends) and how HTTP asks for parts of them."""
