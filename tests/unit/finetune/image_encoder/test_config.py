"""The image encoder recipe shipped in finetune/configs."""

def test_the_bundled_recipe_validates():
    import importlib.resources
    from pathlib import Path

    from finetune.image_encoder.config import ImageEncoderConfig

    recipe = Path(str(importlib.resources.files("finetune") / "configs" / "image_encoder.toml"))
    assert ImageEncoderConfig.from_toml(recipe).model_dump()
