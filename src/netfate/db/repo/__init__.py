"""Repository functions over the NFVI database: plain functions taking a Session.

Each validates its input, maps constraint violations to netfate.errors (Conflict, NotFound,
InvalidInput) with messages naming what is wrong, and flushes (the caller's session commits).
Timestamps default to now; tests pass ``now=`` to pin them.
"""

from netfate.db.repo.catalogue import add_bundle, delete_bundle, get_bundle, list_bundles
from netfate.db.repo.desired import desired_state_for_node
from netfate.db.repo.instances import (
    delete_instance,
    get_instance,
    instance_id_for,
    list_instances,
    set_instance_active_users,
    set_instance_actual_state,
    set_instance_desired_state,
    upsert_instance,
)
from netfate.db.repo.lcm import (
    add_subscription,
    delete_subscription,
    get_op_occ,
    get_subscription,
    list_op_occs,
    list_subscriptions,
    merge_op_params,
    new_op_occ,
    request_cancel,
    set_op_state,
)
from netfate.db.repo.nodes import (
    delete_node,
    get_node,
    list_nodes,
    set_node_online,
    update_node_resources,
    upsert_node,
)
from netfate.db.repo.notifications import (
    ack_notification,
    add_notification,
    delete_notification,
    get_notification,
    is_muted,
    list_mutes,
    list_notifications,
    mute,
    unmute,
)
from netfate.db.repo.sessions import (
    active_session,
    active_session_by_mac,
    add_session,
    end_session,
    list_sessions,
)
from netfate.db.repo.steering import (
    clear_steering,
    list_steering,
    mark_steering_installed,
    set_steering,
)
from netfate.db.repo.users import (
    authenticate_user,
    create_user,
    delete_user,
    get_user,
    list_users,
    update_user,
    update_user_seen,
)

__all__ = [
    "ack_notification",
    "active_session",
    "active_session_by_mac",
    "add_bundle",
    "add_notification",
    "add_session",
    "add_subscription",
    "authenticate_user",
    "clear_steering",
    "create_user",
    "delete_bundle",
    "delete_instance",
    "delete_node",
    "delete_notification",
    "delete_subscription",
    "delete_user",
    "desired_state_for_node",
    "end_session",
    "get_bundle",
    "get_instance",
    "get_node",
    "get_notification",
    "get_op_occ",
    "get_subscription",
    "get_user",
    "instance_id_for",
    "is_muted",
    "list_bundles",
    "list_instances",
    "list_mutes",
    "list_nodes",
    "list_notifications",
    "list_op_occs",
    "list_sessions",
    "list_steering",
    "list_subscriptions",
    "list_users",
    "mark_steering_installed",
    "merge_op_params",
    "mute",
    "new_op_occ",
    "request_cancel",
    "set_instance_active_users",
    "set_instance_actual_state",
    "set_instance_desired_state",
    "set_node_online",
    "set_op_state",
    "set_steering",
    "unmute",
    "update_node_resources",
    "update_user",
    "update_user_seen",
    "upsert_instance",
    "upsert_node",
]
