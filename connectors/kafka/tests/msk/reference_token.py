"""The MSK IAM token of AWS's reference signer (aws-msk-iam-sasl-signer-python) for the
credentials, region and signing time given in the environment, printed as JSON: the token,
its expiry and the decoded URL. The clock is fixed by replacing botocore's."""
import base64
import datetime
import json
import os

import botocore.auth
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials

at = datetime.datetime.fromtimestamp(int(os.environ["SIGN_AT"]), datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: (
    at.replace(tzinfo=None) if remove_tzinfo else at
)


class Fixed(CredentialProvider):
    def load(self):
        return Credentials(
            os.environ["SIGN_KEY_ID"],
            os.environ["SIGN_SECRET"],
            os.environ.get("SIGN_TOKEN") or None,
        )


token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
    os.environ["SIGN_REGION"], Fixed()
)
url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
print(json.dumps({"token": token, "expiry_ms": expiry_ms, "url": url}))
