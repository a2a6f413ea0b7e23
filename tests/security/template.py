"""template.yaml as CloudFormation sees it: short-form tags kept as their long forms (!Ref X -> {"Ref": "X"},
!GetAtt A.B -> {"Fn::GetAtt": ["A", "B"]}, !Sub ... -> {"Fn::Sub": ...}), and the same document after the SAM
transform (the roles SAM generates, with every policy template expanded), run in-process by samtranslator."""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

from tests.conftest import REPO

TEMPLATE = REPO / "template.yaml"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _source() -> dict[str, Any]:
    return dict(yaml.load(TEMPLATE.read_text(), Loader=CfnLoader))  # noqa: S506 - a SafeLoader subclass


def source() -> dict[str, Any]:
    """The SAM template, with intrinsic functions in long form (a fresh copy: callers may change it)."""
    return copy.deepcopy(_source())


@functools.cache
def _transformed() -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    document = source()
    # The translator wants S3 locations for code, as `sam validate` gives it (it replaces local paths the same way).
    for resource in document["Resources"].values():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = "s3://bucket/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = "s3://bucket/layer.zip"
    translator = Translator({}, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return dict(translator.translate(document, parameter_values={}))


def transformed() -> dict[str, Any]:
    """The CloudFormation template `sam deploy` would create (a fresh copy)."""
    return copy.deepcopy(_transformed())


def functions() -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every AWS::Serverless::Function."""
    return {
        name: resource.get("Properties") or {}
        for name, resource in source()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def api_routes() -> list[tuple[str, str, str]]:
    """(METHOD, path, function logical id) of every Api event in the template."""
    routes = []
    for name, properties in functions().items():
        for event in (properties.get("Events") or {}).values():
            if event["Type"] == "Api":
                routes.append((event["Properties"]["Method"].upper(), event["Properties"]["Path"], name))
    return routes
