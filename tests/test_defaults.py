"""Each trainer default is written once: configs/trainer/default.yaml (with its comment) and the schema agree."""
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from gan_cli.config import TrainerConfig, config_dir
from gan_cli.metrics.evaluate import EvalSettings


def differences(yaml_node: dict, schema_node: dict, prefix: str = "trainer.") -> list[str]:
    found = []
    for key in sorted(set(yaml_node) | set(schema_node)):
        if key not in yaml_node or key not in schema_node:
            found.append(f"{prefix}{key} is only in the {'schema' if key in schema_node else 'YAML'}")
        elif isinstance(schema_node[key], dict):
            found += differences(yaml_node[key], schema_node[key], f"{prefix}{key}.")
        elif yaml_node[key] != schema_node[key]:
            found.append(f"{prefix}{key}: YAML {yaml_node[key]!r}, schema {schema_node[key]!r}")
    return found


def test_trainer_yaml_and_schema_give_the_same_defaults():
    written = yaml.safe_load((Path(config_dir()) / "trainer" / "default.yaml").read_text())
    assert differences(written, OmegaConf.to_container(OmegaConf.structured(TrainerConfig))) == []


def test_the_differences_are_found():
    assert differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 0}) == [
        "trainer.b.c: YAML 2, schema 3", "trainer.d is only in the schema"]


def test_eval_yaml_and_the_evaluation_settings_give_the_same_defaults():
    written = yaml.safe_load((Path(config_dir()) / "eval.yaml").read_text())
    schema = OmegaConf.to_container(OmegaConf.structured(EvalSettings))
    assert differences({k: written[k] for k in schema if k in written}, schema, "eval.") == []
