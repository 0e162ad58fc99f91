"""prodmatch.retrieval"""
