"""Vector stores: file parsing, chunking, embedding and search for the file_search tool."""
