"""Sign-in and account forms."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from tracker.auth.accounts import PASSWORD_MAX_LENGTH, USERNAME_MAX_LENGTH


class LoginForm(FlaskForm):
    username = StringField(
        _l("User name"), validators=[DataRequired(), Length(max=USERNAME_MAX_LENGTH)]
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )


class ChangePasswordForm(FlaskForm):
    """The new password's length is checked by the view: its minimum is a setting."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)],
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)],
    )
    confirm_password = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords differ.")),
        ],
    )
