"""The request fields batchstream accepts, held to the SDK's own request types (beta ones included)."""

from anthropic.types import message_count_tokens_params, message_create_params
from anthropic.types.beta import message_count_tokens_params as beta_count_tokens_params
from anthropic.types.beta import message_create_params as beta_create_params

from batchstream.apifields import COUNT_TOKENS_FIELDS, MESSAGES_FIELDS, SAMPLING_FIELDS

# Parameters of the SDK's methods that it sends as headers, not in the body.
HEADER_PARAMS = {"betas", "user_profile_id", "workspace_id"}
# Ours, not the SDK's 2.x types: the sampling fields (left its signatures; API versions before 2026-10-21
# take them) and an older beta's spelling of output_config.format.
NOT_IN_SDK = {*SAMPLING_FIELDS, "output_format"}


def _body_fields(*typed_dicts: type) -> set[str]:
    return {name for typed in typed_dicts for name in typed.__annotations__} - HEADER_PARAMS


def test_messages_fields_are_the_sdks() -> None:
    sdk = _body_fields(
        message_create_params.MessageCreateParamsBase, beta_create_params.MessageCreateParamsBase
    )
    assert sdk == MESSAGES_FIELDS - NOT_IN_SDK


def test_count_tokens_fields_are_the_sdks() -> None:
    sdk = _body_fields(
        message_count_tokens_params.MessageCountTokensParams,
        beta_count_tokens_params.MessageCountTokensParams,
    )
    assert COUNT_TOKENS_FIELDS - {"output_format"} == sdk
    assert COUNT_TOKENS_FIELDS < MESSAGES_FIELDS
