"""Penn Treebank for lm-eval: the test sentences as one document."""


def join_sentences(dataset):
    import datasets

    text = " ".join(s.strip() for s in dataset["sentence"])
    return datasets.Dataset.from_dict({"text": [text]})
