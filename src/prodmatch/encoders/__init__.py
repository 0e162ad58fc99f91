"""prodmatch.encoders"""
