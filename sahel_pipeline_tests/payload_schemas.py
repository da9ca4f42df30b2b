"""JSON schemas of what Slack and Teams document for the payloads we post, for `jsonschema` to check them against.

Slack (Block Kit reference, "Blocks" and "Composition objects"): a message has at most 50 blocks; a header's text is
plain_text of at most 150 characters; a section's text at most 3,000; a context block has 1 to 10 elements; a
message posted with blocks should carry a top-level `text` for notifications.

Teams (Workflows "Post to a channel when a webhook request is received"): a `message` whose attachments are Adaptive
Cards, `contentType: application/vnd.microsoft.card.adaptive`; the card (schema adaptivecards.io) has type
AdaptiveCard, a version Teams renders (1.4 or 1.5) and body elements of the documented types with their required
members and enumerated styles.
"""

TEXT_OBJECT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["plain_text", "mrkdwn"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 3000},
        "emoji": {"type": "boolean"},
        "verbatim": {"type": "boolean"},
    },
    "additionalProperties": False,
}

SLACK_MESSAGE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["text", "blocks"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 40000},
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "header"},
                            "text": {
                                "type": "object",
                                "required": ["type", "text"],
                                "properties": {
                                    "type": {"const": "plain_text"},
                                    "text": {"type": "string", "minLength": 1, "maxLength": 150},
                                    "emoji": {"type": "boolean"},
                                },
                                "additionalProperties": False,
                            },
                            "block_id": {"type": "string", "maxLength": 255},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "section"},
                            "text": TEXT_OBJECT,
                            "block_id": {"type": "string", "maxLength": 255},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": TEXT_OBJECT},
                            "block_id": {"type": "string", "maxLength": 255},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"const": "divider"}, "block_id": {"type": "string"}},
                        "additionalProperties": False,
                    },
                ]
            },
        },
    },
    "additionalProperties": False,
}

ADAPTIVE_ELEMENT = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "text"],
            "properties": {
                "type": {"const": "TextBlock"},
                "text": {"type": "string", "minLength": 1},
                "wrap": {"type": "boolean"},
                "weight": {"enum": ["Default", "Lighter", "Bolder"]},
                "size": {"enum": ["Default", "Small", "Medium", "Large", "ExtraLarge"]},
                "color": {"enum": ["Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"]},
                "isSubtle": {"type": "boolean"},
                "separator": {"type": "boolean"},
                "spacing": {"enum": ["None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"]},
            },
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["type", "items"],
            "properties": {
                "type": {"const": "Container"},
                "items": {"type": "array", "items": {"$ref": "#/$defs/element"}},
                "style": {"enum": ["default", "emphasis", "good", "attention", "warning", "accent"]},
                "separator": {"type": "boolean"},
                "spacing": {"enum": ["None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"]},
            },
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["type", "facts"],
            "properties": {
                "type": {"const": "FactSet"},
                "facts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["title", "value"],
                        "properties": {"title": {"type": "string"}, "value": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
                "separator": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    ]
}

TEAMS_MESSAGE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"element": ADAPTIVE_ELEMENT},
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": "null"},
                    "content": {
                        "type": "object",
                        "required": ["type", "version", "body"],
                        "properties": {
                            "$schema": {"const": "http://adaptivecards.io/schemas/adaptive-card.json"},
                            "type": {"const": "AdaptiveCard"},
                            "version": {"enum": ["1.4", "1.5"]},
                            "msteams": {"type": "object", "properties": {"width": {"enum": ["Full"]}}},
                            "body": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/element"}},
                            "actions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["type", "url"],
                                    "properties": {
                                        "type": {"const": "Action.OpenUrl"},
                                        "title": {"type": "string"},
                                        "url": {"type": "string", "pattern": "^https?://"},
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
