"""Evaluate retrieval with off-the-shelf encoders: `python evaluate.py -m experiment=img,title_cat,title_cat_tfidf`."""

from prodmatch.cli import evaluate

if __name__ == "__main__":
    evaluate()
