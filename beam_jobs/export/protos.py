"""The messages a Datastore managed export stores, built at import time.

Data records are App Engine legacy (onestore v3) `EntityProto`s: proto2 with
groups, from App Engine's `entity.proto`, which no maintained package ships
for protobuf 4+. The metadata files are two more small messages. The subset
we read and write is declared here as a `FileDescriptorProto` and turned into
message classes when this module is imported, so:

- protobuf's C (upb) parser does the decoding: a record is parsed in one
  call, which is what makes reading a million entities affordable;
- there is no generated `_pb2` module, so no protoc/runtime version check can
  refuse to import it when the protobuf runtime moves.

Field numbers follow App Engine's `entity.proto` and the export formats
(FIELD-NOTES.md, "Datastore managed exports"). Choices that differ from the
originals, none of which changes the bytes on the wire:

- every field is `optional`, even those App Engine marks `required`: a
  reader must not refuse a record for a field it does not use;
- `meaning` (and the metadata's enums) are `int32`, not enums: proto2 enums
  are closed, so a value this module does not name would vanish into the
  unknown fields instead of reading back as its number;
- a `PropertyValue`'s fields form a oneof named `value`: App Engine sets at
  most one, and `WhichOneof` tells the decoder which in a single call.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

# Property.meaning values (App Engine entity.proto) that change a value.
GD_WHEN = 7
GEORSS_POINT = 9
BLOB = 14              # bytes, unindexed
TEXT = 15              # a long string, unindexed
BYTESTRING = 16        # bytes, indexed
ENTITY_PROTO = 19      # a serialized EntityProto: an embedded entity
EMPTY_LIST = 24
MEANING_URI_ZLIB = 'ZLIB'   # with BLOB: zlib-compressed bytes
# The same two facts as the Datastore v1 API (and so ndb) reports them.
V1_ZLIB = 22
V1_USER = 20

_PACKAGE = 'beam_jobs.export'
_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _INT64, _INT32, _DOUBLE, _BOOL, _MESSAGE = (
    _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_INT64, _F.TYPE_INT32,
    _F.TYPE_DOUBLE, _F.TYPE_BOOL, _F.TYPE_MESSAGE)


def _field(name: str, number: int, kind: int, type_name: str = '',
           repeated: bool = False) -> descriptor_pb2.FieldDescriptorProto:
    field = _F(name=name, number=number, type=kind,
               label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        field.type_name = f'.{_PACKAGE}.{type_name}'
    return field


def _message(parent, name: str, *fields) -> descriptor_pb2.DescriptorProto:
    message = (parent.message_type if isinstance(
        parent, descriptor_pb2.FileDescriptorProto) else parent.nested_type).add(
            name=name)
    message.field.extend(fields)
    return message


def _group(message, full_name: str, number: int, *fields,
           repeated: bool = False) -> descriptor_pb2.DescriptorProto:
    """A proto2 group: a nested type, and a field named as it, lower-cased."""
    name = full_name.rsplit('.', 1)[-1]
    nested = _message(message, name, *fields)
    message.field.append(_field(name.lower(), number, _F.TYPE_GROUP,
                                full_name, repeated))
    return nested


def _entity_messages(file: descriptor_pb2.FileDescriptorProto) -> None:
    path = _message(file, 'Path')
    _group(path, 'Path.Element', 1, _field('type', 2, _STRING),
           _field('id', 3, _INT64), _field('name', 4, _STRING), repeated=True)
    _message(file, 'Reference', _field('app', 13, _STRING),
             _field('name_space', 20, _STRING),
             _field('path', 14, _MESSAGE, 'Path'),
             _field('database_id', 23, _STRING))
    _message(file, 'User', _field('email', 1, _STRING),
             _field('auth_domain', 2, _STRING))

    value = _message(file, 'PropertyValue', _field('int64Value', 1, _INT64),
                     _field('booleanValue', 2, _BOOL),
                     _field('stringValue', 3, _BYTES),
                     _field('doubleValue', 4, _DOUBLE))
    _group(value, 'PropertyValue.PointValue', 5, _field('x', 6, _DOUBLE),
           _field('y', 7, _DOUBLE))
    _group(value, 'PropertyValue.UserValue', 8, _field('email', 9, _STRING),
           _field('auth_domain', 10, _STRING), _field('nickname', 11, _STRING),
           _field('gaiaid', 18, _INT64),
           _field('obfuscated_gaiaid', 19, _STRING),
           _field('federated_identity', 21, _STRING),
           _field('federated_provider', 22, _STRING))
    reference = _group(value, 'PropertyValue.ReferenceValue', 12,
                       _field('app', 13, _STRING),
                       _field('name_space', 20, _STRING),
                       _field('database_id', 23, _STRING))
    _group(reference, 'PropertyValue.ReferenceValue.PathElement', 14,
           _field('type', 15, _STRING), _field('id', 16, _INT64),
           _field('name', 17, _STRING), repeated=True)
    value.oneof_decl.add(name='value')
    for field in value.field:
        field.oneof_index = 0

    _message(file, 'Property', _field('meaning', 1, _INT32),
             _field('meaning_uri', 2, _STRING), _field('name', 3, _STRING),
             _field('multiple', 4, _BOOL),
             _field('value', 5, _MESSAGE, 'PropertyValue'))
    _message(file, 'EntityProto', _field('key', 13, _MESSAGE, 'Reference'),
             _field('entity_group', 16, _MESSAGE, 'Path'),
             _field('owner', 17, _MESSAGE, 'User'),
             _field('property', 14, _MESSAGE, 'Property', repeated=True),
             _field('raw_property', 15, _MESSAGE, 'Property', repeated=True))


def _metadata_messages(file: descriptor_pb2.FileDescriptorProto) -> None:
    # TS.overall_export_metadata (after its version record).
    _message(file, 'EntitySetSpec', _field('kind_type', 1, _INT32),
             _field('kind', 2, _STRING), _field('namespace_type', 3, _INT32),
             _field('namespace', 4, _STRING))
    _message(file, 'ExportEntry',
             _field('entity_set', 1, _MESSAGE, 'EntitySetSpec'),
             _field('metadata_file', 2, _STRING),
             _field('num_entities', 3, _INT64), _field('num_bytes', 4, _INT64))
    _message(file, 'OverallExportMetadata',
             _field('exports', 1, _MESSAGE, 'ExportEntry', repeated=True))
    # NS_KIND.export_metadata: the old Datastore Admin backup description.
    _message(file, 'BackupInfo', _field('name', 1, _STRING),
             _field('start_timestamp', 2, _INT64),
             _field('end_timestamp', 3, _INT64))
    _message(file, 'KindBackupInfo', _field('kind', 1, _STRING),
             _field('file', 2, _STRING, repeated=True),
             _field('entity_schema', 3, _BYTES),
             _field('is_partial', 4, _BOOL))
    _message(file, 'Backup', _field('backup_info', 1, _MESSAGE, 'BackupInfo'),
             _field('kind_info', 2, _MESSAGE, 'KindBackupInfo', repeated=True))


def _build() -> dict:
    file = descriptor_pb2.FileDescriptorProto(
        name='beam_jobs/export/managed_export.proto', package=_PACKAGE,
        syntax='proto2')
    _entity_messages(file)
    _metadata_messages(file)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {message.name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f'{_PACKAGE}.{message.name}'))
        for message in file.message_type}


_CLASSES = _build()
Path = _CLASSES['Path']
Reference = _CLASSES['Reference']
PropertyValue = _CLASSES['PropertyValue']
Property = _CLASSES['Property']
EntityProto = _CLASSES['EntityProto']
EntitySetSpec = _CLASSES['EntitySetSpec']
ExportEntry = _CLASSES['ExportEntry']
OverallExportMetadata = _CLASSES['OverallExportMetadata']
Backup = _CLASSES['Backup']
