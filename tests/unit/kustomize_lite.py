"""Render the kustomizations under deploy/ without kubectl or a kustomize binary.

Implements the part of Kustomize that deploy/ uses, and refuses the rest: a
kustomization.yaml is first validated against deploy/schemas/kustomization.json, so a
field this renderer does not implement fails the tests instead of being ignored (which
would make the offline render differ from `kubectl kustomize`).

- ``resources``: YAML files (several documents each) and directories holding a
  kustomization.yaml, rendered first, in the order listed;
- ``configMapGenerator`` with ``files`` and ``disableNameSuffixHash: true``;
- ``patches`` with a ``path`` to a strategic-merge patch, its target named by the
  patch's own apiVersion, kind and name; lists merge by the keys Kubernetes declares
  for the fields patched here (containers by name, env by name, ...), other lists are
  replaced, ``null`` deletes a key;
- ``namespace``: set on every namespaced object (Kustomize also renames a Namespace
  object to it);
- ``labels`` with neither ``includeSelectors`` nor ``includeTemplates``: added to
  each object's metadata.labels only.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

KUSTOMIZATION = "kustomization.yaml"

# Kinds without a namespace among those deploy/ could hold.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "PriorityClass",
        "StorageClass",
        "ClusterTriggerAuthentication",
    }
)

# patchMergeKey of the Kubernetes list fields a strategic-merge patch can touch here;
# any other list is replaced whole, as Kubernetes does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "envFrom": None,  # atomic in Kubernetes: replaced
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class KustomizeError(ValueError):
    """A kustomization this renderer cannot render (or Kustomize would refuse)."""


def schema_registry(schemas_dir: Path) -> Registry:
    """Every JSON Schema under ``schemas_dir``, by its ``$id``."""
    resources = []
    for path in sorted(schemas_dir.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def validator(registry: Registry, schema_id: str) -> jsonschema.Draft202012Validator:
    schema = registry.contents(schema_id)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The objects of a YAML file (empty documents skipped)."""
    with path.open(encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: a document is not a Kubernetes object")
    return docs


def object_id(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta.get("name", ""))


def render(directory: Path, schemas_dir: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` would print (in resource order)."""
    check = validator(schema_registry(schemas_dir), "urn:memberstream:deploy:kustomization")
    return _render(directory.resolve(), check, ())


def _render(
    directory: Path, check: jsonschema.Draft202012Validator, seen: tuple[Path, ...]
) -> list[dict[str, Any]]:
    if directory in seen:
        raise KustomizeError(f"{directory}: kustomizations include each other")
    kfile = directory / KUSTOMIZATION
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no {KUSTOMIZATION}")
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8"))
    errors = sorted(check.iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        raise KustomizeError(f"{kfile}: {errors[0].message} at {list(errors[0].absolute_path)}")

    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects += _render(target, check, (*seen, directory))
        elif target.is_file():
            # Kustomize's default load restrictor: files only from inside the root.
            if directory not in target.parents:
                raise KustomizeError(f"{kfile}: file {entry} is outside the kustomization")
            objects += load_documents(target)
        else:
            raise KustomizeError(f"{kfile}: resource {entry} does not exist")

    for generator in spec.get("configMapGenerator", []):
        objects.append(_config_map(directory, generator))

    _refuse_duplicates(objects, kfile)
    for patch in spec.get("patches", []):
        _apply_patch_file(objects, directory / patch["path"], kfile)

    namespace = spec.get("namespace")
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if namespace is not None:
            if obj["kind"] == "Namespace":
                meta["name"] = namespace
            elif obj["kind"] not in CLUSTER_SCOPED:
                meta["namespace"] = namespace
        for label_set in spec.get("labels", []):
            meta.setdefault("labels", {}).update(label_set["pairs"])
    _refuse_duplicates(objects, kfile)
    return objects


def _config_map(directory: Path, generator: dict[str, Any]) -> dict[str, Any]:
    data = {}
    for name in generator["files"]:
        data[name] = (directory / name).read_text(encoding="utf-8")
    meta: dict[str, Any] = {"name": generator["name"]}
    labels = generator["options"].get("labels")
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _refuse_duplicates(objects: list[dict[str, Any]], kfile: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = object_id(obj)
        if key in seen:
            raise KustomizeError(f"{kfile}: {key} is defined twice")
        seen.add(key)


def _apply_patch_file(objects: list[dict[str, Any]], path: Path, kfile: Path) -> None:
    for patch in load_documents(path):
        name = patch.get("metadata", {}).get("name")
        targets = [
            o
            for o in objects
            if o["apiVersion"] == patch["apiVersion"]
            and o["kind"] == patch["kind"]
            and o.get("metadata", {}).get("name") == name
        ]
        if len(targets) != 1:
            raise KustomizeError(
                f"{kfile}: patch {path.name} matches {len(targets)} objects "
                f"({patch['kind']}/{name}), not one"
            )
        strategic_merge(targets[0], patch)


def strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a strategic-merge ``patch`` to ``base`` in place (and return it)."""
    for key, value in patch.items():
        if key.startswith("$"):
            raise KustomizeError(f"patch directive {key} is not implemented")
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            strategic_merge(base[key], value)
        elif isinstance(value, list) and MERGE_KEYS.get(key) and isinstance(base.get(key), list):
            _merge_list(base[key], value, MERGE_KEYS[key])
        else:
            base[key] = copy.deepcopy(value)
    return base


def _merge_list(base: list[Any], patch: list[Any], merge_key: str) -> None:
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KustomizeError(f"a patched list item has no {merge_key}: {item!r}")
        match = [b for b in base if isinstance(b, dict) and b.get(merge_key) == item[merge_key]]
        if match:
            strategic_merge(match[0], item)
        else:
            base.append(copy.deepcopy(item))
